CREATE SOURCE d FROM DETECTIONS 'data/market.jsonl';
CREATE VIEW counts AS
  SELECT label, window_start, count(*) AS n
  FROM TUMBLE(d, event_time, INTERVAL '5' SECOND)
  GROUP BY label, window_start;
CREATE SINK out FROM counts INTO STDOUT;
