# host: see the files in this directory.
