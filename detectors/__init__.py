"""Detection: the Detections type, scene analysis (stationary objects, bin state), zones, dwell rules, alarms with
evidence."""
