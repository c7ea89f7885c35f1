-- The sample table of the seed, with sample data. Idempotent: creates what is missing, inserts rows that
-- are not there yet (by primary key), and says what it did.

CREATE TABLE IF NOT EXISTS public.customers (
  customer_id       integer PRIMARY KEY,
  first_name        varchar(100) NOT NULL,
  last_name         varchar(100) NOT NULL,
  email             varchar(255) UNIQUE,
  phone             varchar(20),
  address           text,
  registration_date date NOT NULL DEFAULT CURRENT_DATE,
  loyalty_points    integer NOT NULL DEFAULT 0
);

DO $$
DECLARE
  added integer;
BEGIN
  INSERT INTO public.customers (customer_id, first_name, last_name, email, phone, address, registration_date, loyalty_points)
  SELECT 2000 + i,
         (ARRAY['Ada','Grace','Alan','Edsger','Barbara','Donald','Frances','Ken','Radia','Tim'])[1 + (i - 1) % 10],
         (ARRAY['Lovelace','Hopper','Turing','Dijkstra','Liskov','Knuth','Allen','Thompson','Perlman','Berners-Lee'])[1 + (i - 1) % 10],
         format('customer%s@example.com', 2000 + i),
         format('555%s', lpad((1000000 + i * 7919 % 9000000)::text, 7, '0')),
         format('%s Beam Street', 100 + i),
         DATE '2024-01-01' + i,
         (i * 37) % 1000
  FROM generate_series(1, 30) AS i
  ON CONFLICT (customer_id) DO NOTHING;
  GET DIAGNOSTICS added = ROW_COUNT;
  RAISE NOTICE 'customers: % sample rows inserted, % already there', added, 30 - added;
END $$;
