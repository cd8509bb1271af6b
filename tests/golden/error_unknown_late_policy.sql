CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl' WITH (late = 'ignore');
