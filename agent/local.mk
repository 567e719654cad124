# agent: see the files in this directory.
