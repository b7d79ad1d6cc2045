DROP TABLE my_page;
