CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE VIEW totals AS SELECT label, window_start, count(*) FROM d GROUP BY label, window_start;
