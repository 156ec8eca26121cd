"""Environment wrappers shared by learners and consumers (gymnasium is imported only by the modules that need it)."""
