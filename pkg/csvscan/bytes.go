package csvscan

import "bytes"

func indexByte(b []byte, c byte) int { return bytes.IndexByte(b, c) }
func indexQuote(b []byte) int        { return bytes.IndexByte(b, '"') }
