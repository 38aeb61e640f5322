"""Developer tools: benchmarks (`sprint bench`, the GUI bench) and builders of random-weight
SANA-Sprint architectures (the tiny test model, the published shapes).

Nothing at app run time imports this package, and the installers leave it out
(packaging/sprint-desktop.spec excludes it); it works in a source install.
"""
