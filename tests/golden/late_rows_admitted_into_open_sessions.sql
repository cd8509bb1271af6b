-- Admitted late at its camera's watermark (00:09), the car row at 00:02
-- would make a session ending at 00:04 on its own: that ended before the
-- watermark, so the view refuses it and names the session. Sessions of
-- other labels are unaffected.
CREATE SOURCE d FROM DETECTIONS 'data/late.jsonl' WITH (lateness = '2s', late = 'admit');
CREATE VIEW v AS
  SELECT label, window_start, window_end, count(*) AS n
  FROM SESSION(d, event_time, INTERVAL '2' SECOND) GROUP BY label, window_start, window_end;
CREATE SINK out FROM v INTO STDOUT;
CREATE SINK dead FROM dead_letter INTO STDOUT;
