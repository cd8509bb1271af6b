-- 10-second windows every 5 seconds: each detection is in two windows.
CREATE SOURCE d FROM DETECTIONS 'data/market.jsonl';
CREATE VIEW v AS
  SELECT source_id, window_start, window_end, count(*) AS n
  FROM HOP(d, event_time, INTERVAL '5' SECOND, INTERVAL '10' SECOND)
  GROUP BY source_id, window_start, window_end;
CREATE SINK out FROM v INTO STDOUT;
