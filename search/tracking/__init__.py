"""Everything labeltune writes to or reads from MLflow, in one package (trainable/ imports no MLflow).

    names.py      every tag and metric name (standard library only)
    runs.py       the store: open_experiment, check_store, find_search_runs, mlflow_uris; the UI's links, saved views
    columns.py    what a run shows: a trial's searched params, the search's constants, description, baselines
    callback.py   MLflowTracker, the Tune callback that is a search's only MLflow writer
    report.py     the search report on the parent run
    registry.py   promotion's run, the registered version and its alias; resolving NAME@ALIAS
    pyfunc.py     the registered model's Python class (search/pyfunc.py re-exports it)
    local_run.py  the run of one `labeltune train`

Import the module you need: this file imports nothing, so `search.tracking.names` stays light.
"""


def __getattr__(name: str):
    # Tune pickles the RunConfig, tracker included, into a search's tuner.pkl; a search started before
    # this package existed names `search.tracking.MLflowTracker`, and `search --resume` unpickles it.
    if name == "MLflowTracker":
        from search.tracking.callback import MLflowTracker

        return MLflowTracker
    raise AttributeError(f"module 'search.tracking' has no attribute {name!r}")
