"""Core ML target: classifier ``.mlpackage`` export and a reference MIL executor to check it on Linux."""
