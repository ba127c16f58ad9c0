"""mmoe-pipeline: the pipeline graph and its config (`graph`), running it on this machine (`local`), on
Kubeflow (`kubeflow`), and what a run produced for people (`reporting`); `cli` is the click wiring."""
