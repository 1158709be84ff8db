"""A small third-party-style plugin the core tests load, exercising every hook."""
