package transitions

//go:generate go run ./internal/statechart -o ../docs/statechart.md
