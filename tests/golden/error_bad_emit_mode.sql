CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE VIEW v WITH (emit = 'sometimes') AS
  SELECT window_start, count(*) FROM TUMBLE(d, event_time, INTERVAL '10' SECOND) GROUP BY window_start;
