"""What tests share besides fixtures: builders, clients and constants, one
module per part of the system. Fixtures stay in the conftest files; a test
imports these modules, never a conftest."""
