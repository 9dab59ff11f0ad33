"""The KFP DAG and the `alchemist` command line."""
