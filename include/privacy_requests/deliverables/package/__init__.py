"""The access package in the formats a policy asks for: JSON for machines, an HTML letter for the person,
a zip of CSV files for spreadsheets; and its delivery to the data subject by email."""
