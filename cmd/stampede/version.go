package main

import stampede "github.com/stampede-load/stampede"

func versionString() string { return stampede.Version }
