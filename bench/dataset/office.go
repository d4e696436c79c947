package dataset

import (
	"archive/zip"
	"bytes"
	"compress/zlib"
	"fmt"
	"image"
	"image/jpeg"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Office is what a branch office's file server holds: already-compressed
// documents (docx, xlsx and pptx with a real OOXML zip structure, PDFs with
// deflated content streams and embedded JPEGs, JPEG photos), text and CSV,
// one large sparse file (a VM disk image), a folder of 100,000 files of
// 1–4 KiB, and paths deep enough to pass Windows' old 260-character limit.
const Office Kind = "office"

// Full-scale sizes of the office dataset; Generate multiplies them by its
// scale.
const (
	OfficeDocBytes    = 1 << 30  // documents, photos, text and CSV
	OfficeDocs        = 6_000    // how many of them
	OfficeSmallFiles  = 100_000  // 1–4 KiB each, in one folder
	OfficeSparseSize  = 4 << 30  // apparent size of the sparse file
	OfficeSparseData  = 64 << 20 // of which written, in 1 MiB extents
	officeDeepFolders = 24       // nesting of the deep-path chain
)

// zipTime is every zip entry's time, so that the same seed gives the same
// bytes on every run.
var zipTime = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)

type officeDoc struct {
	path string
	kind string // docx, xlsx, pptx, pdf, jpg, txt, csv
	size int    // target size; the file comes out near it
	seed uint64
}

// Share of the documents by kind, and the median size of each (log-normal,
// sigma 1.0), as a file server's Documents and Pictures folders hold.
var officeKinds = []struct {
	kind   string
	weight int
	median int
}{
	{"docx", 25, 60 << 10}, {"xlsx", 15, 80 << 10}, {"pptx", 8, 900 << 10}, {"pdf", 20, 250 << 10},
	{"jpg", 20, 400 << 10}, {"txt", 7, 12 << 10}, {"csv", 5, 300 << 10},
}

var officeFolders = []string{"Finance", "HR", "Sales", "Projects", "Projects/2025", "Projects/2026", "Scans", "Photos/Site visits", "Photos/Events", "Shared/Templates", "Archive/2024"}

func genOffice(root string, seed uint64, scale float64) (Stats, error) {
	r := rand.New(rand.NewPCG(seed, 3))
	v := newVocab(seed)
	var st Stats
	mkdir := func(rel string) error {
		if err := os.MkdirAll(filepath.Join(root, rel), 0o755); err != nil {
			return fmt.Errorf("create folder: %w", err)
		}
		return nil
	}
	dirs := map[string]bool{}
	addDirs := func(rel string) {
		for d := rel; d != "." && d != ""; d = filepath.Dir(d) {
			dirs[d] = true
		}
	}

	// Documents: sizes scaled so they add up to the total.
	n := max(len(officeKinds), int(math.Round(OfficeDocs*scale)))
	total := float64(OfficeDocBytes) * scale
	weightSum := 0
	for _, k := range officeKinds {
		weightSum += k.weight
	}
	docs := make([]officeDoc, n)
	raw := make([]float64, n)
	var sum float64
	for i := range docs {
		k := officeKinds[i%len(officeKinds)] // every kind at least once
		if i >= len(officeKinds) {
			x := r.IntN(weightSum)
			for _, c := range officeKinds {
				if x < c.weight {
					k = c
					break
				}
				x -= c.weight
			}
		}
		raw[i] = float64(k.median) * math.Exp(r.NormFloat64())
		sum += raw[i]
		folder := officeFolders[r.IntN(len(officeFolders))]
		docs[i] = officeDoc{path: filepath.Join(folder, fmt.Sprintf("%s %s %d.%s", v.word(r), v.word(r), i, k.kind)), kind: k.kind, seed: uint64(i)}
		addDirs(folder)
	}
	for i := range docs {
		docs[i].size = max(512, min(int(raw[i]*total/sum), 64<<20))
	}

	// Deep paths: a chain of long folder names, a few files at each level
	// from 10 down, so the deepest paths pass 260 characters.
	deep := ""
	for d := range officeDeepFolders {
		deep = filepath.Join(deep, fmt.Sprintf("%02d %s %s %s", d, v.word(r), v.word(r), v.word(r)))
		addDirs(filepath.Join("Deep", deep))
		if d >= 10 {
			docs = append(docs, officeDoc{path: filepath.Join("Deep", deep, fmt.Sprintf("notes %d.txt", d)), kind: "txt", size: 2 << 10, seed: 1<<40 | uint64(d)})
		}
	}
	for d := range dirs {
		if err := mkdir(d); err != nil {
			return Stats{}, err
		}
	}
	sizes := make([]int64, len(docs))
	err := parallel(len(docs), func(i int, buf *[]byte) error {
		d := docs[i]
		fr := rand.New(rand.NewPCG(seed, 4<<32|d.seed))
		b, err := officeFile(d, v, fr, *buf)
		if err != nil {
			return err
		}
		*buf = b[:0]
		sizes[i] = int64(len(b))
		if err := os.WriteFile(filepath.Join(root, d.path), b, 0o644); err != nil {
			return fmt.Errorf("write dataset file: %w", err)
		}
		return nil
	})
	if err != nil {
		return Stats{}, err
	}
	for _, s := range sizes {
		st.Bytes += s
	}
	st.Files += len(docs)

	// The folder of small files: mail-store or cache-like, 1–4 KiB each.
	small := max(1, int(math.Round(OfficeSmallFiles*scale)))
	dirs["Mail store"] = true
	if err := mkdir("Mail store"); err != nil {
		return Stats{}, err
	}
	smallSizes := make([]int64, small)
	err = parallel(small, func(i int, buf *[]byte) error {
		fr := rand.New(rand.NewPCG(seed, 5<<32|uint64(i)))
		size := 1<<10 + fr.IntN(3<<10+1)
		*buf = v.appendText(*buf, size, fr, i%2 == 0)
		smallSizes[i] = int64(size)
		if err := os.WriteFile(filepath.Join(root, "Mail store", fmt.Sprintf("msg-%06d.eml", i)), *buf, 0o644); err != nil {
			return fmt.Errorf("write dataset file: %w", err)
		}
		return nil
	})
	if err != nil {
		return Stats{}, err
	}
	for _, s := range smallSizes {
		st.Bytes += s
	}
	st.Files += small

	// The sparse file: a VM disk image with a few written extents.
	size, err := writeSparse(filepath.Join(root, "VMs", "branch-server.img"), seed, scale, mkdir)
	if err != nil {
		return Stats{}, err
	}
	dirs["VMs"] = true
	st.Files++
	st.Bytes += size
	st.Dirs = len(dirs)
	return st, nil
}

func writeSparse(path string, seed uint64, scale float64, mkdir func(string) error) (int64, error) {
	if err := mkdir("VMs"); err != nil {
		return 0, err
	}
	size := max(1<<20, int64(float64(OfficeSparseSize)*scale)) &^ (1<<20 - 1)
	extents := max(1, int(float64(OfficeSparseData)*scale)>>20)
	f, err := os.Create(path)
	if err != nil {
		return 0, fmt.Errorf("create dataset file: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return 0, fmt.Errorf("size the sparse file: %w", err)
	}
	var key [32]byte
	key[0] = 0x5a
	for j := range 8 {
		key[8+j] = byte(seed >> (8 * j))
	}
	cc := rand.NewChaCha8(key)
	r := rand.New(rand.NewPCG(seed, 6))
	buf := make([]byte, 1<<20)
	for e := range extents {
		_, _ = cc.Read(buf)
		if e%2 == 1 {
			clear(buf[len(buf)/2:]) // half-zero blocks, as file systems in an image have
		}
		at := r.Int64N(size>>20) << 20
		if _, err := f.WriteAt(buf, at); err != nil {
			f.Close()
			return 0, fmt.Errorf("write dataset file: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("write dataset file: %w", err)
	}
	return size, nil
}

func (v *vocab) word(r *rand.Rand) string {
	return v.words[len(keywords)+r.IntN(len(v.words)-len(keywords))]
}

// officeFile makes one document of about d.size bytes, reusing buf.
func officeFile(d officeDoc, v *vocab, r *rand.Rand, buf []byte) ([]byte, error) {
	switch d.kind {
	case "txt":
		return v.appendText(buf, d.size, r, false), nil
	case "csv":
		return appendCSV(buf[:0], d.size, v, r), nil
	case "jpg":
		return photo(d.size, r)
	case "pdf":
		return pdfDoc(d.size, v, r)
	}
	return ooxml(d, v, r)
}

func appendCSV(b []byte, size int, v *vocab, r *rand.Rand) []byte {
	b = append(b, "date,account,description,quantity,amount,currency\n"...)
	day := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for len(b) < size {
		day = day.Add(time.Duration(r.IntN(8)) * time.Hour)
		b = fmt.Appendf(b, "%s,%d,%s %s,%d,%.2f,EUR\n", day.Format("2006-01-02"), 4000+r.IntN(900), v.word(r), v.word(r), 1+r.IntN(50), r.Float64()*5000)
	}
	return b[:size]
}

// photo is a real JPEG: a smooth scene with sensor-like noise, sized so its
// encoding comes out near size bytes (about 0.4 bytes a pixel at quality 85,
// measured).
func photo(size int, r *rand.Rand) ([]byte, error) {
	px := max(64*48, size*5/2)
	w := int(math.Sqrt(float64(px) * 4 / 3))
	h := max(16, px/w)
	img := image.NewYCbCr(image.Rect(0, 0, w, h), image.YCbCrSubsampleRatio420)
	a, b, c := r.Float64()*6, r.Float64()*6, r.Float64()*200
	for y := range h {
		for x := range w {
			base := c + 40*math.Sin(a*float64(x)/float64(w)*math.Pi) + 40*math.Cos(b*float64(y)/float64(h)*math.Pi)
			img.Y[y*img.YStride+x] = uint8(max(0, min(255, base+float64(r.IntN(48))-24)))
		}
	}
	for i := range img.Cb {
		img.Cb[i] = uint8(118 + r.IntN(20))
		img.Cr[i] = uint8(118 + r.IntN(20))
	}
	var out bytes.Buffer
	if err := jpeg.Encode(&out, img, &jpeg.Options{Quality: 85}); err != nil {
		return nil, fmt.Errorf("encode photo: %w", err)
	}
	return out.Bytes(), nil
}

func paragraphs(v *vocab, r *rand.Rand, size int) []string {
	text := string(v.appendText(nil, size, r, false))
	var ps []string
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "//")); line != "" {
			ps = append(ps, xmlEscape(line))
		}
	}
	return ps
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// ooxml writes a docx, xlsx or pptx: a zip with [Content_Types].xml, the
// package relationships and the main part, its XML deflated and its
// pictures (real JPEGs) stored as Office stores them.
func ooxml(d officeDoc, v *vocab, r *rand.Rand) ([]byte, error) {
	var out bytes.Buffer
	zw := zip.NewWriter(&out)
	add := func(name string, method uint16, data []byte) error {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: method, Modified: zipTime})
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	const xmlHead = `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` + "\n"
	var main, mainType, relType string
	var parts []struct {
		name string
		data []byte
	}
	// Text compresses about 5:1 in the zip (measured); pictures take the
	// rest.
	textBytes, pictures := d.size*5, 0
	switch d.kind {
	case "docx":
		main, mainType = "word/document.xml", "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"
		relType = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
		if r.IntN(3) == 0 {
			pictures, textBytes = 1+r.IntN(2), d.size
		}
		var b strings.Builder
		b.WriteString(xmlHead + `<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>`)
		for _, p := range paragraphs(v, r, textBytes/2) {
			fmt.Fprintf(&b, `<w:p><w:r><w:t xml:space="preserve">%s</w:t></w:r></w:p>`, p)
		}
		b.WriteString(`</w:body></w:document>`)
		parts = append(parts, struct {
			name string
			data []byte
		}{main, []byte(b.String())})
	case "xlsx":
		main, mainType = "xl/workbook.xml", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"
		relType = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
		var sh strings.Builder
		sh.WriteString(xmlHead + `<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>`)
		for row := 1; sh.Len() < d.size*5; row++ { // deflates about 5:1 (measured)
			fmt.Fprintf(&sh, `<row r="%d"><c r="A%d" t="inlineStr"><is><t>%s</t></is></c><c r="B%d"><v>%d</v></c><c r="C%d"><v>%.2f</v></c></row>`,
				row, row, xmlEscape(v.word(r)), row, r.IntN(100000), row, r.Float64()*10000)
		}
		sh.WriteString(`</sheetData></worksheet>`)
		parts = append(parts,
			struct {
				name string
				data []byte
			}{main, []byte(xmlHead + `<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>`)},
			struct {
				name string
				data []byte
			}{"xl/_rels/workbook.xml.rels", []byte(xmlHead + `<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/></Relationships>`)},
			struct {
				name string
				data []byte
			}{"xl/worksheets/sheet1.xml", []byte(sh.String())})
	case "pptx":
		main, mainType = "ppt/presentation.xml", "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml"
		relType = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"
		slides := 3 + r.IntN(12)
		pictures, textBytes = max(1, slides/3), d.size/8
		var pres strings.Builder
		pres.WriteString(xmlHead + `<p:presentation xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><p:sldIdLst>`)
		for s := 1; s <= slides; s++ {
			fmt.Fprintf(&pres, `<p:sldId id="%d" r:id="rId%d"/>`, 255+s, s)
			var sl strings.Builder
			sl.WriteString(xmlHead + `<p:sld xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"><p:cSld><p:spTree>`)
			for _, p := range paragraphs(v, r, max(256, textBytes/slides)) {
				fmt.Fprintf(&sl, `<p:sp><p:txBody><a:p><a:r><a:t>%s</a:t></a:r></a:p></p:txBody></p:sp>`, p)
			}
			sl.WriteString(`</p:spTree></p:cSld></p:sld>`)
			parts = append(parts, struct {
				name string
				data []byte
			}{fmt.Sprintf("ppt/slides/slide%d.xml", s), []byte(sl.String())})
		}
		pres.WriteString(`</p:sldIdLst></p:presentation>`)
		parts = append(parts, struct {
			name string
			data []byte
		}{main, []byte(pres.String())})
	}
	types := xmlHead + `<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Default Extension="jpeg" ContentType="image/jpeg"/>` +
		`<Override PartName="/` + main + `" ContentType="` + mainType + `"/></Types>`
	if err := add("[Content_Types].xml", zip.Deflate, []byte(types)); err != nil {
		return nil, err
	}
	if err := add("_rels/.rels", zip.Deflate, []byte(xmlHead+`<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="`+relType+`" Target="`+main+`"/></Relationships>`)); err != nil {
		return nil, err
	}
	for _, p := range parts {
		if err := add(p.name, zip.Deflate, p.data); err != nil {
			return nil, err
		}
	}
	media := map[string]string{"docx": "word/media", "pptx": "ppt/media"}[d.kind]
	for i := range pictures {
		jpg, err := photo(max(8<<10, (d.size-out.Len())/max(1, pictures-i)), r)
		if err != nil {
			return nil, err
		}
		if err := add(fmt.Sprintf("%s/image%d.jpeg", media, i+1), zip.Store, jpg); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("write %s: %w", d.kind, err)
	}
	return out.Bytes(), nil
}

// pdfDoc is a well-formed PDF: catalog, page tree, pages whose content
// streams are FlateDecode'd text, an optional scanned page (a DCTDecode
// JPEG), and a cross-reference table with the right offsets.
func pdfDoc(size int, v *vocab, r *rand.Rand) ([]byte, error) {
	var out bytes.Buffer
	var offsets []int
	obj := func(body string, stream []byte) {
		offsets = append(offsets, out.Len())
		fmt.Fprintf(&out, "%d 0 obj\n%s", len(offsets), body)
		if stream != nil {
			out.WriteString("\nstream\n")
			out.Write(stream)
			out.WriteString("\nendstream")
		}
		out.WriteString("\nendobj\n")
	}
	out.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	scanned := r.IntN(3) == 0
	var jpg []byte
	if scanned {
		var err error
		if jpg, err = photo(size*3/4, r); err != nil {
			return nil, err
		}
	}
	textBytes := max(1<<10, (size-len(jpg))*2) // deflated about 2:1 with the PDF operators (measured)
	pages := max(1, textBytes/(6<<10))
	// Objects: 1 catalog, 2 pages, 3 font, [4 image], then page/content pairs.
	first := 4
	if scanned {
		first = 5
	}
	kids := make([]string, pages)
	for i := range kids {
		kids[i] = fmt.Sprintf("%d 0 R", first+2*i)
	}
	obj("<< /Type /Catalog /Pages 2 0 R >>", nil)
	obj(fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), pages), nil)
	obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>", nil)
	if scanned {
		cfg, err := jpeg.DecodeConfig(bytes.NewReader(jpg))
		if err != nil {
			return nil, fmt.Errorf("scanned page: %w", err)
		}
		obj(fmt.Sprintf("<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter /DCTDecode /Length %d >>",
			cfg.Width, cfg.Height, len(jpg)), jpg)
	}
	for i := range pages {
		var content bytes.Buffer
		content.WriteString("BT /F1 10 Tf 50 800 Td 12 TL\n")
		for _, p := range paragraphs(v, r, textBytes/pages) {
			fmt.Fprintf(&content, "(%s) '\n", strings.NewReplacer(`\`, `\\`, "(", `\(`, ")", `\)`).Replace(p))
		}
		content.WriteString("ET\n")
		if scanned && i == 0 {
			content.WriteString("q 500 0 0 700 50 50 cm /Im1 Do Q\n")
		}
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		zw.Write(content.Bytes())
		zw.Close()
		res := "<< /Font << /F1 3 0 R >> >>"
		if scanned {
			res = "<< /Font << /F1 3 0 R >> /XObject << /Im1 4 0 R >> >>"
		}
		obj(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources %s /Contents %d 0 R >>", res, first+2*i+1), nil)
		obj(fmt.Sprintf("<< /Length %d /Filter /FlateDecode >>", z.Len()), z.Bytes())
	}
	xref := out.Len()
	fmt.Fprintf(&out, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, o := range offsets {
		fmt.Fprintf(&out, "%010d 00000 n \n", o)
	}
	fmt.Fprintf(&out, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, xref)
	return out.Bytes(), nil
}
