CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl' WITH (lateness = 'soon');
