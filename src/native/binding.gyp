{
  "targets": [{
    "target_name": "strata_sys",
    "sources": ["strata_sys.c"],
    "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
  }]
}
