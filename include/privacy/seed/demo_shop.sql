-- The demo shop database. Jane (jane@example.com, +15555550100) owns rows several levels deep;
-- John and Ada own rows that a request for Jane must not touch.
CREATE TABLE address (id INTEGER PRIMARY KEY, street TEXT, city TEXT, zip TEXT);
CREATE TABLE customer (id INTEGER PRIMARY KEY, email TEXT, name TEXT, phone TEXT, address_id INTEGER,
                       loyalty_tier TEXT, created TEXT);
CREATE TABLE orders (id INTEGER PRIMARY KEY, customer_id INTEGER, shipping_address_id INTEGER, total REAL);
CREATE TABLE order_item (order_id INTEGER, line INTEGER, product TEXT, quantity INTEGER,
                         PRIMARY KEY (order_id, line));
CREATE TABLE login (id INTEGER PRIMARY KEY, customer_id INTEGER, time TEXT, ip_address TEXT);
CREATE TABLE payment_card (id INTEGER PRIMARY KEY, customer_id INTEGER, name_on_card TEXT, ccn TEXT,
                           billing_address_id INTEGER);
CREATE TABLE sms_subscription (id INTEGER PRIMARY KEY, phone TEXT, topic TEXT);

INSERT INTO address VALUES
  (1, '1 Main Street', 'Springfield', '11111'),
  (2, '2 Side Road', 'Shelbyville', '22222'),
  (3, '3 Ocean Drive', 'Capital City', '33333'),
  (4, '4 Hill Lane', 'Ogdenville', '44444');
INSERT INTO customer VALUES
  (1, 'jane@example.com', 'Jane Doe', '+15555550100', 1, 'gold', '2024-01-05'),
  (2, 'john@example.com', 'John Roe', '+15555550199', 2, 'silver', '2024-02-11'),
  (3, 'ada@example.com', 'Ada Poe', '+15555550142', 4, 'bronze', '2024-03-20');
INSERT INTO orders VALUES
  (10, 1, 3, 42.50),
  (11, 1, 1, 12.00),
  (12, 2, 2, 99.99);
INSERT INTO order_item VALUES
  (10, 1, 'Blue mug', 2),
  (10, 2, 'Tea towel', 1),
  (11, 1, 'Notebook', 3),
  (12, 1, 'Desk lamp', 1);
INSERT INTO login VALUES
  (100, 1, '2024-05-01T10:00:00', '203.0.113.7'),
  (101, 1, '2024-05-02T11:30:00', '203.0.113.7'),
  (102, 2, '2024-05-03T09:15:00', '198.51.100.4');
INSERT INTO payment_card VALUES
  (200, 1, 'Jane Doe', '4111111111111111', 1),
  (201, 3, 'Ada Poe', '5500000000000004', 4);
INSERT INTO sms_subscription VALUES
  (300, '+15555550100', 'offers'),
  (301, '+15555550199', 'offers');
