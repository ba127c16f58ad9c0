"""The pipeline graph and its configuration: which components, wired how, with which settings (spec,
schema, TrainerConfig, Beam options); the same graph for every runner."""
