"""Local fakes of external services (the email providers), shared by tests and benchmarks."""
