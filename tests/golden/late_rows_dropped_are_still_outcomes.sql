CREATE SOURCE d FROM DETECTIONS 'data/late.jsonl' WITH (lateness = '2s', late = 'drop');
CREATE SINK dead FROM dead_letter INTO STDOUT;
CREATE SINK all_outcomes FROM outcomes INTO STDOUT;
