-- Sessions: runs of detections of one label on one camera less than a
-- second apart.
CREATE SOURCE d FROM DETECTIONS 'data/market.jsonl';
CREATE VIEW visits AS
  SELECT source_id, label, window_start, window_end, count(*) AS n, max(confidence) AS best
  FROM SESSION(d, event_time, INTERVAL '1' SECOND)
  GROUP BY source_id, label, window_start, window_end;
CREATE SINK out FROM visits INTO STDOUT;
