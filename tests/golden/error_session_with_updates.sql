CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE VIEW v WITH (emit = 'updates') AS
  SELECT label, window_start, count(*) FROM SESSION(d, event_time, INTERVAL '1' SECOND) GROUP BY label, window_start;
