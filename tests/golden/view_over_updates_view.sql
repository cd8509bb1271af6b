-- A continuous view over a view in updates mode: each change of an
-- upstream window comes as a retraction (diff -1) and a new row (+1), and
-- counts as that many. Folded to the end, `total` per label must be the
-- number of that label's rows, and `windows` the number of its windows.
CREATE SOURCE d FROM DETECTIONS 'data/market.jsonl';
CREATE VIEW counts WITH (emit = 'updates') AS
  SELECT label, window_start, count(*) AS n
  FROM TUMBLE(d, event_time, INTERVAL '10' SECOND) GROUP BY label, window_start;
CREATE VIEW totals WITH (emit = 'final') AS
  SELECT label, sum(n) AS total, count(*) AS windows FROM counts GROUP BY label;
CREATE VIEW direct WITH (emit = 'final') AS
  SELECT label, count(*) AS direct FROM d GROUP BY label;
CREATE SINK t FROM totals INTO STDOUT;
CREATE SINK x FROM direct INTO STDOUT;
