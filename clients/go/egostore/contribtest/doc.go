// Package contribtest holds the tests that run ego-contrib's DynamoDB store next to egostore on one table.
// It is a module of its own so that egostore's go.mod, which its users' builds read, names neither
// ego-contrib nor the AWS SDK; it is never published.
package contribtest
