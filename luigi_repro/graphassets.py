"""The style sheet and script inlined into the HTML view: no network, no CDN, no font files.

The script only adds interaction to the SVG drawn in Python: a click (or Enter, or a link
``#task=<task id>`` / ``#family=<name>``) shows a task's reasons, or a family's tasks, in the side
panel; a click on a legend entry dims every other status. It builds the panel with
``textContent`` only, so no text from a record is ever read as markup.
"""

from __future__ import annotations

__all__ = ["SCRIPT", "STYLE"]

STYLE = """
* { box-sizing: border-box; }
html, body { margin: 0; height: 100%; }
body { font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
  color: #1d232a; background: #f7f8fa; display: flex; flex-direction: column; }
header { padding: 10px 16px 8px; background: #fff; border-bottom: 1px solid #d8dde3; }
h1 { font-size: 16px; margin: 0 0 2px; }
.summary { margin: 0; color: #4b5560; }
.notes { margin: 4px 0 0; color: #8a5a00; }
.legend { list-style: none; margin: 6px 0 0; padding: 0; display: flex; flex-wrap: wrap;
  gap: 6px 14px; }
.legend li { cursor: pointer; display: flex; align-items: center; gap: 5px; user-select: none; }
.legend li.active { font-weight: 600; text-decoration: underline; }
.swatch { width: 14px; height: 14px; border-radius: 3px; border: 2px solid; display: inline-block; }
main { flex: 1; display: flex; min-height: 0; }
#canvas { flex: 1; overflow: auto; }
#panel { width: 380px; overflow: auto; padding: 12px 16px; background: #fff;
  border-left: 1px solid #d8dde3; }
#panel h2 { font-size: 15px; margin: 0 0 6px; word-break: break-all; }
#panel h3 { font-size: 13px; margin: 12px 0 4px; color: #4b5560; }
#panel ul { margin: 0; padding-left: 18px; }
#panel li { margin: 2px 0; word-break: break-word; }
#panel code { font-size: 12px; word-break: break-all; }
.hint { color: #6b7680; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; border: 1px solid;
  font-size: 11px; font-weight: 600; }
.link { color: #0b57b3; }
.files { color: #4b5560; font-size: 12px; }
svg .node { cursor: pointer; }
svg .node:focus { outline: none; }
svg .node .box { stroke-width: 1.5; }
svg .node:hover .box, svg .node:focus .box { stroke-width: 3; }
svg .node.selected .box { stroke-width: 3.5; filter: drop-shadow(0 0 3px #0b57b3); }
svg .label { font-size: 12px; fill: #1d232a; }
svg .family-name { font-size: 13px; font-weight: 600; fill: #1d232a; }
svg .status { font-size: 11px; font-weight: 600; }
svg .counts { font-size: 11px; fill: #4b5560; }
svg .edge { fill: none; stroke: #9aa5b1; stroke-width: 1.2; }
svg .edge.bad { stroke: #d08a3c; }
svg .edge.lit { stroke: #0b57b3; stroke-width: 2.5; }
svg .dim { opacity: 0.18; }
"""

SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("dag-data").textContent);
  var panel = document.getElementById("panel");
  var svg = document.getElementById("dag");
  var nodes = {}, downstream = {}, groupOf = {};
  svg.querySelectorAll(".node").forEach(function (node) { nodes[node.id] = node; });
  Object.keys(data.tasks).forEach(function (id) {
    data.tasks[id].upstream.forEach(function (up) {
      (downstream[up] = downstream[up] || []).push(id);
    });
  });
  Object.keys(data.groups).forEach(function (gid) {
    data.groups[gid].members.forEach(function (id) { groupOf[id] = gid; });
  });

  function add(parent, tag, text, cls) {
    var child = document.createElement(tag);
    if (text !== undefined && text !== null) { child.textContent = text; }
    if (cls) { child.className = cls; }
    parent.appendChild(child);
    return child;
  }
  function badge(parent, status) {
    var style = data.styles[status] || data.styles[""];
    var span = add(parent, "span", status, "badge");
    span.style.background = style[0];
    span.style.borderColor = style[1];
    span.style.color = style[1];
    span.setAttribute("data-status", status);
    return span;
  }
  function taskLink(parent, id) {
    var task = data.tasks[id];
    var item = add(parent, "li");
    item.setAttribute("data-task-id", id);
    item.setAttribute("data-status", task.status);
    add(item, "a", task.label, "link").href = "#task=" + encodeURIComponent(id);
    item.appendChild(document.createTextNode(" "));
    badge(item, task.status);
    return item;
  }
  function select(nodeId) {
    svg.querySelectorAll(".selected").forEach(function (n) { n.classList.remove("selected"); });
    svg.querySelectorAll(".edge.lit").forEach(function (e) { e.classList.remove("lit"); });
    if (!nodes[nodeId]) { return; }
    nodes[nodeId].classList.add("selected");
    svg.querySelectorAll(".edge").forEach(function (edge) {
      if (edge.getAttribute("data-from") === nodeId || edge.getAttribute("data-to") === nodeId) {
        edge.classList.add("lit");
      }
    });
  }
  function reasons(parent, title, list) {
    if (!list.length) { return; }
    add(parent, "h3", title);
    var ul = add(parent, "ul");
    list.forEach(function (reason) {
      var li = add(ul, "li");
      add(li, "b", reason.kind);
      li.appendChild(document.createTextNode(": " + reason.message));
      reason.files.forEach(function (line) { add(li, "div", line, "files"); });
    });
  }
  function showTask(id) {
    var task = data.tasks[id];
    if (!task) { return; }
    select(groupOf[id] || task.node);
    panel.textContent = "";
    panel.setAttribute("data-showing", id);
    if (groupOf[id]) {
      var back = add(add(panel, "div"), "a", "\u2190 all " + task.family + " tasks", "link");
      back.href = "#family=" + encodeURIComponent(data.groups[groupOf[id]].family);
    }
    add(panel, "h2", task.label);
    badge(panel, task.status);
    add(panel, "div", task.kind + " \u00b7 " + id, "files");
    if (task.ok && !task.reasons.length) { add(panel, "p", "Nothing to do: up to date.", "hint"); }
    reasons(panel, "Reasons", task.reasons);
    reasons(panel, "Notes", task.notes);
    [["Requires", task.upstream], ["Required by", downstream[id] || []]].forEach(function (pair) {
      if (!pair[1].length) { return; }
      add(panel, "h3", pair[0]);
      var ul = add(panel, "ul");
      pair[1].forEach(function (other) { taskLink(ul, other); });
    });
    if (task.outputs.length) {
      add(panel, "h3", "Outputs");
      var outs = add(panel, "ul");
      task.outputs.forEach(function (uri) { add(add(outs, "li"), "code", uri); });
    }
  }
  function showGroup(gid) {
    var group = data.groups[gid];
    if (!group) { return; }
    select(gid);
    panel.textContent = "";
    panel.setAttribute("data-showing", group.family);
    add(panel, "h2", group.family + " (" + group.members.length + " tasks)");
    var counts = JSON.parse(nodes[gid].getAttribute("data-counts"));
    var summary = add(panel, "div");
    Object.keys(counts).forEach(function (status) {
      badge(summary, status).textContent = counts[status] + " " + status;
      summary.appendChild(document.createTextNode(" "));
    });
    var ul = add(panel, "ul");
    var ordered = group.members.slice().sort(function (a, b) {
      return data.tasks[a].rank - data.tasks[b].rank;
    });
    ordered.forEach(function (id) {
      var item = taskLink(ul, id);
      data.tasks[id].reasons.forEach(function (reason) {
        add(item, "div", reason.kind + ": " + reason.message, "files");
      });
    });
  }
  function fromHash() {
    var hash = decodeURIComponent(location.hash.replace(/^#/, ""));
    if (hash.indexOf("task=") === 0) { showTask(hash.slice(5)); }
    if (hash.indexOf("family=") === 0) {
      var name = hash.slice(7);
      Object.keys(data.groups).forEach(function (gid) {
        if (data.groups[gid].family === name) { showGroup(gid); }
      });
    }
  }
  function open(node) {
    var id = node.getAttribute("data-task-id");
    location.hash = id !== null ? "task=" + encodeURIComponent(id)
      : "family=" + encodeURIComponent(node.getAttribute("data-family"));
  }
  svg.addEventListener("click", function (event) {
    var node = event.target.closest(".node");
    if (node) { open(node); }
  });
  svg.addEventListener("keydown", function (event) {
    var node = event.target.closest(".node");
    if (node && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      open(node);
    }
  });
  document.querySelectorAll(".legend li").forEach(function (entry) {
    entry.addEventListener("click", function () {
      var status = entry.getAttribute("data-status");
      var on = !entry.classList.contains("active");
      document.querySelectorAll(".legend li").forEach(function (other) {
        other.classList.remove("active");
      });
      if (on) { entry.classList.add("active"); }
      Object.keys(nodes).forEach(function (nid) {
        var mine = (nodes[nid].getAttribute("data-statuses") || "").split(" ");
        nodes[nid].classList.toggle("dim", on && mine.indexOf(status) < 0);
      });
    });
  });
  window.addEventListener("hashchange", fromHash);
  fromHash();
  document.documentElement.setAttribute("data-dag-ready", "true");
})();
"""
