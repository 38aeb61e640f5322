"""Training side: the Sprint-Shapes world, its evaluator, teacher training, sCM + LADD distillation
and ControlNet training. Uses `core` and `engine`; nothing at app run time imports this package."""
