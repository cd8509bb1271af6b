CREATE SOURCE d FROM DETECTIONS 'data/few.jsonl';
CREATE VIEW fine AS
  SELECT label, window_start, count(*) AS n FROM TUMBLE(d, event_time, INTERVAL '5' SECOND) GROUP BY label, window_start;
CREATE VIEW coarse AS
  SELECT window_start, sum(n) FROM TUMBLE(fine, n, INTERVAL '1' MINUTE) GROUP BY window_start;
