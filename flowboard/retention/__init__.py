"""What is kept and for how long: the sweeper (`sweep.py`) and storage use (`usage.py`)."""
