"""The files of one run's folder: the rig writes them, the report and timeline read them."""

SERIAL_LOG = "serial.log"  # what the device printed during the run
TAP_TRACE = "tap.jsonl"  # the wire tap's records, one JSON object a line
EXTRA_EVENTS = "*.events.jsonl"  # {"time": <epoch s>, "kind": ..., "text": ...} per line
TIMELINE = "timeline.html"  # the run's timeline page (python -m harness timeline)
