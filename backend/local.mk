# backend: see the files in this directory.
