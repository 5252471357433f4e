"""Sales: the shape of a public Luigi + scikit-learn project, ported to luigi_repro.

The original (Rodolfo Ferro's Luigi tutorial pipeline: ``ImputeData -> EncodeData -> TrainModel``
with a date parameter) keeps its logic in ``utils/preproc.py`` and ``utils/model.py``, reads the
raw CSV through a class attribute (``data = LocalTarget(...)``) that ``requires()`` never
declares, and lets its helpers write the real results into an ``outcomes/`` folder while each
task's declared output is only a log line. Porting it took what the README promises, and no
more: ``luigi.Task`` became ``TaskWithCheckingInputHash`` and ``luigi.LocalTarget`` became
``HashableLocalTarget``. Nothing else changed, so luigi_repro has to see what this code really
depends on: the helpers' code and constants (the code closure) and the files ``run()`` reads
without declaring them (``undeclared_reads``; ``track`` makes them inputs).

The helpers here are our own small pure-Python versions (no scikit-learn), with the same shape::

    luigi --module pipeline TrainModel --date 2024-03-01 --local-scheduler
    luigi-repro verify --module pipeline TrainModel --date 2024-03-01
"""

from __future__ import annotations

import os

import luigi
from utils import config
from utils.model import train_model
from utils.preproc import encode_data, impute_data, load_data

from luigi_repro import HashableLocalTarget, TaskWithCheckingInputHash


class ImputeData(TaskWithCheckingInputHash):
    date = luigi.DateParameter()
    data = HashableLocalTarget(path=config.RAW_DATA)
    out_folder = HashableLocalTarget(path=config.OUT_FOLDER)
    strategy = luigi.Parameter(default="median")

    if not os.path.exists(out_folder.path):
        os.makedirs(out_folder.path)

    def output(self):
        return HashableLocalTarget(path=f"logs/impute-{self.date:%Y-%m-%d}.txt")

    def run(self):
        print("Imputing data...")
        written = impute_data(self.data.path, self.out_folder.path, self.strategy)
        self.output().makedirs()
        with self.output().open("w") as f:
            f.write(f"Imputed data into {written}.\n")


class EncodeData(TaskWithCheckingInputHash):
    date = luigi.DateParameter()
    data = HashableLocalTarget(path=config.RAW_DATA)
    out_folder = HashableLocalTarget(path=config.OUT_FOLDER)
    strategy = luigi.Parameter(default="median")

    def requires(self):
        return ImputeData(self.date, strategy=self.strategy)

    def output(self):
        return HashableLocalTarget(path=f"logs/encode-{self.date:%Y-%m-%d}.txt")

    def run(self):
        print("Encoding data...")
        file_name = self.data.path.split("/")[-1].split(".")[0]
        file_name = self.out_folder.path + file_name + "-imputed.csv"
        written = encode_data(file_name, self.out_folder.path)
        self.output().makedirs()
        with self.output().open("w") as f:
            f.write(f"Encoded data into {written}.\n")


class TrainModel(TaskWithCheckingInputHash):
    date = luigi.DateParameter()
    data = HashableLocalTarget(path=config.RAW_DATA)
    out_folder = HashableLocalTarget(path=config.OUT_FOLDER)
    strategy = luigi.Parameter(default="median")

    def requires(self):
        return EncodeData(self.date, strategy=self.strategy)

    def output(self):
        return HashableLocalTarget(path=f"logs/train-{self.date:%Y-%m-%d}.txt")

    def run(self):
        print("Training model...")
        file_name = self.data.path.split("/")[-1].split(".")[0]
        file_name = self.out_folder.path + file_name + "-encoded.csv"
        x, y = load_data(file_name, x_labels=config.FEATURES, y_labels=[config.TARGET])
        written = train_model(x, y, self.out_folder.path)
        self.output().makedirs()
        with self.output().open("w") as f:
            f.write(f"Trained model into {written}.\n")
