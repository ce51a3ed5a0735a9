-- Each service owns its database (the image's entrypoint runs this once, on an empty volume).
CREATE DATABASE user_svc;
CREATE DATABASE order_svc;
