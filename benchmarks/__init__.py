"""Scripts that print numbers (`python -m benchmarks.<name>`; never timed tests).
`benchmarks.machine.describe_machine` is the one description of the machine a figure
was measured on (versions, devices, CPU model, cores, load)."""
