# doc: see the files in this directory.
