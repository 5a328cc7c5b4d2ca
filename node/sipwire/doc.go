// Package sipwire reads and writes SIP messages in sipgo's types with few
// allocations.
package sipwire
