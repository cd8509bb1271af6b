CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE VIEW v AS
  SELECT window_start, count(*) FROM HOP(d, event_time, INTERVAL '1' MINUTE, INTERVAL '10' SECOND) GROUP BY window_start;
