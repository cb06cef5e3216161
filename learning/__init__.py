"""The learning loop: reviewers' labels → a YOLO dataset → a site model trained here → shadow, compare, promote."""
