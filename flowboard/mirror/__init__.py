"""Optional mirrors of execution state into external stores."""
