"""Where the pipeline reads and writes, and how it cross-validates: read in ``run()``."""

RAW_DATA = "raw_data"
MATRICES = "data_matricies"
MODELS = "models"
#: Every ``run()`` appends its task id here, so a user (and the tests) see what was computed.
RUNS_LOG = "runs.log"

CV_FOLDS = 3
SEED = 42
