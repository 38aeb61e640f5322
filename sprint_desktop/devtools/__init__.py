"""Developer tools: benchmarks (`sprint bench`, the GUI bench) and the tiny test model's builder
(the random-weight builder itself is `export.random_weights`, the configs `formats.architectures`).

Nothing at app run time imports this package, and the installers leave it out
(packaging/sprint-desktop.spec excludes it); it works in a source install.
"""
