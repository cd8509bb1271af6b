CREATE SOURCE d FROM DETECTIONS 'data/market.jsonl';
CREATE VIEW v AS
  SELECT source_id, label, window_start, window_end, count(*) AS n
  FROM HOP(d, event_time, INTERVAL '10' SECOND, INTERVAL '10' SECOND)
  GROUP BY source_id, label, window_start, window_end;
CREATE SINK out FROM v INTO STDOUT;
