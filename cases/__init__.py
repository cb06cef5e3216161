"""City-management cases: categories and codes, workflow state machine, dispatch, deadlines, store, filing policy."""
