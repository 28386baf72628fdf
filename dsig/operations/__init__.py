"""What a user does with signatures: sign, verify, remove and inspect, for one data set or many
files, and the results they return."""
