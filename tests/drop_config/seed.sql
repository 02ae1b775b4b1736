CREATE TABLE consumer (id INTEGER PRIMARY KEY, email VARCHAR(200), phone VARCHAR(40), first_name VARCHAR(100),
  last_name VARCHAR(100), dob VARCHAR(20), zip VARCHAR(20), maid VARCHAR(64), ctv VARCHAR(64), vin VARCHAR(40),
  do_not_sell INTEGER DEFAULT 0);
CREATE TABLE purchase (id INTEGER PRIMARY KEY, consumer_id INTEGER, shipping_name VARCHAR(100));
CREATE TABLE loan (id INTEGER PRIMARY KEY, email VARCHAR(200), amount VARCHAR(20));
INSERT INTO consumer (id, email, phone, first_name, last_name, dob, zip, maid, ctv, vin) VALUES
 (1, 'Anna.Smith@Domain.com', '+1(415)555-9317', 'Anna', 'Smith', '1990-01-02', '94110', NULL, NULL, NULL),
 (2, 'shared@family.example', '+1 650 555 0101', 'Bo', 'Lee', '1980-05-06', '94016', NULL, NULL, NULL),
 (3, 'shared@family.example', '+1 650 555 0102', 'Cy', 'Lee', '1982-07-08', '94016', NULL, NULL, NULL),
 (4, 'danielle.johnson12@example.com', '5551273811', 'Danielle', 'Johnson', 'July 4, 1985', '91790-3771',
     '6D92078A-8246-4BA4-AE5B-76104861E7DC', 'ROKU-ABCD-1234', '1M8GDM9AXKP042788');
INSERT INTO purchase (id, consumer_id, shipping_name) VALUES (10, 1, 'Anna Smith'), (11, 4, 'D. Johnson'),
 (12, 2, 'Bo Lee');
INSERT INTO loan (id, email, amount) VALUES (20, 'kept@loans.example', '1000'), (21, 'Anna.Smith@Domain.com', '50');
