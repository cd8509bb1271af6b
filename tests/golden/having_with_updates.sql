-- HAVING applies to each update; folded, the rows that pass are final.
CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE VIEW v WITH (emit = 'updates') AS
  SELECT label, window_start, count(*) AS n
  FROM TUMBLE(d, event_time, INTERVAL '1' MINUTE)
  GROUP BY label, window_start
  HAVING count(*) > 2;
CREATE SINK out FROM v INTO STDOUT;
