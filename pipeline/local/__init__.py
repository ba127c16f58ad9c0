"""Running the pipeline on this machine: preflight checks of the input, the Beam and Local orchestrators,
Beam worker processes, the quiet console's progress lines and the run's log file."""
