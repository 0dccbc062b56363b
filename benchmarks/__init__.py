"""asv benchmarks of mlip-conformance (see asv.conf.json and README "Performance")."""
