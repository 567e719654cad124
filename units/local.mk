# units: see the files in this directory.
